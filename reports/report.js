/* auditor report: filter and sort the findings tables, in the page itself (no network, no dependency).
   Works on the rows of every table with class "findings". Text is only ever read with textContent and
   written with textContent: no HTML is built from data, and nothing is evaluated. */
(function () {
  "use strict";

  var tables = Array.prototype.slice.call(document.querySelectorAll("table.findings"));
  if (!tables.length) {
    return;
  }
  var input = document.getElementById("filter");
  var counter = document.getElementById("filter-count");
  var collator = window.Intl && Intl.Collator ? new Intl.Collator(undefined, {numeric: false, sensitivity: "base"})
                                              : null;
  var NUMBER = /^[-+]?(\d+(\.\d*)?|\.\d+)$/;

  // Every row once, with its text in lower case, so typing stays fast on 10,000 rows.
  var rows = [];
  tables.forEach(function (table) {
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        rows.push({row: row, text: row.textContent.toLowerCase()});
      });
    });
  });

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function applyFilter() {
    var query = input ? input.value.trim().toLowerCase() : "";
    var shown = 0;
    rows.forEach(function (item) {
      var match = !query || item.text.indexOf(query) !== -1;
      item.row.hidden = !match;
      if (match) {
        shown += 1;
      }
    });
    // A rule's block, or the waived list, with no matching row is hidden while a filter is on.
    tables.forEach(function (table) {
      var any = false;
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          if (!row.hidden) {
            any = true;
          }
        });
      });
      var block = table.closest ? table.closest("[data-filter-block]") : null;
      (block || table).hidden = Boolean(query) && !any;
    });
    if (counter) {
      counter.textContent = query
        ? plural(shown, "row matches", "rows match") + " out of " + rows.length
        : plural(rows.length, "row", "rows") + " in the findings tables";
    }
  }

  var timer = null;
  if (input) {
    input.addEventListener("input", function () {
      if (timer !== null) {
        window.clearTimeout(timer);
      }
      timer = window.setTimeout(function () {
        timer = null;
        applyFilter();
      }, rows.length > 2000 ? 150 : 0);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        input.value = "";
        applyFilter();
      }
    });
  }

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) {
      return "";
    }
    var key = cell.getAttribute("data-sort");
    return (key !== null ? key : cell.textContent).trim();
  }

  function compare(a, b) {
    if (NUMBER.test(a) && NUMBER.test(b)) {
      return parseFloat(a) - parseFloat(b);
    }
    return collator ? collator.compare(a, b) : a.localeCompare(b);
  }

  function sortBy(table, header, index) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var list = Array.prototype.slice.call(body.rows).map(function (row, position) {
        return {row: row, key: cellValue(row, index), position: position};
      });
      list.sort(function (x, y) {
        var order = compare(x.key, y.key);
        if (order === 0) {
          return x.position - y.position;  // stable: ties keep their order
        }
        return ascending ? order : -order;
      });
      var fragment = document.createDocumentFragment();
      list.forEach(function (item) {
        fragment.appendChild(item.row);
      });
      body.appendChild(fragment);
    });
  }

  tables.forEach(function (table) {
    if (!table.tHead || !table.tHead.rows.length) {
      return;
    }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.title = "Sort by this column";
      while (header.firstChild) {
        button.appendChild(header.firstChild);
      }
      header.appendChild(button);
      button.addEventListener("click", function () {
        sortBy(table, header, index);
      });
    });
  });

  applyFilter();
})();
