/*---
title: Database, cache, queue and cluster-control ports are not open to the internet
severity: high
resource_type: security_group
description: >
  Fails a security group with an ingress rule that lets the whole internet (0.0.0.0/0 or ::/0, no
  remote at all, or an address group holding 0.0.0.0/0 or ::/0) reach a sensitive service port, one of `sensitive_ports`: databases, caches, search
  engines, message queues and container or cluster control ports. A port range that covers one of them
  counts, whatever the port protocol (tcp, udp, sctp, ...), and so does a rule for all traffic (protocol
  any); such rules are also reported by the all-traffic and wide-range rules, which judge a different
  control. Administrative ports (SSH, RDP, WinRM) are the business of
  security_group_admin_ports_not_open_to_world, not of this rule.
rationale: >
  These services are meant to be reached by applications and cluster peers, not by the internet, and
  several of them answer without authentication in their default configuration. The default list:
  relational databases (1433 SQL Server, 1521 Oracle, 3306 MySQL/MariaDB, 5432 PostgreSQL); document,
  wide-column and time-series stores (5984 CouchDB, 7000/7001 Cassandra inter-node, 9042 Cassandra CQL,
  8086 InfluxDB, 27017-27019 MongoDB); caches (6379 Redis, 11211 memcached, which also amplifies UDP
  floods); search (9200/9300 Elasticsearch/OpenSearch HTTP and transport, 5601 Kibana); message queues
  (5672 AMQP, 15672 RabbitMQ management, 9092 Kafka); container and cluster control (2375/2376 Docker
  API, 2379/2380 etcd client and peer, 6443 Kubernetes API, 10250 kubelet API, 8500 Consul). Added to
  the suggested list: 2181 ZooKeeper (Kafka and Hadoop coordination, unauthenticated by default) and 10255
  (the kubelet's read-only port, unauthenticated). Exposed databases and caches are mass-scanned for data
  theft and ransom; an open Docker, etcd or kubelet API hands over the hosts and every secret of the
  cluster.
remediation: >
  Restrict the rule's remote to the application's own networks or, better, to the security group of the
  clients (remote_group_id), and reach the service from outside through a VPN, bastion or an
  authenticated proxy. Then delete the rule open to 0.0.0.0/0 or ::/0:
  `openstack security group rule delete RULE_ID`, after adding the narrower one with e.g.
  `openstack security group rule create --ingress --protocol tcp --dst-port 5432 --remote-group APP_GROUP DB_GROUP`.
params:
  sensitive_ports: [1433, 1521, 2181, 2375, 2376, 2379, 2380, 3306, 5432, 5601, 5672, 5984, 6379, 6443,
                    7000, 7001, 8086, 8500, 9042, 9092, 9200, 9300, 10250, 10255, 11211, 15672, 27017,
                    27018, 27019]
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html#security-groups
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/security-group-rule.html
---*/
WITH covering AS (
    SELECT security_group_id, protocol, port_min, port_max, source,
           list_sort(list_filter($sensitive_ports, lambda p: p BETWEEN port_min AND port_max)) AS covered
    FROM world_ingress_rules
    WHERE port_min IS NOT NULL
      -- cheap range test first: most rules cover none of the ports, and the lambda is the costly part
      AND port_min <= list_max($sensitive_ports) AND port_max >= list_min($sensitive_ports)
),
hits AS (
    SELECT security_group_id,
           string_agg(DISTINCT opened, ', ' ORDER BY opened) AS opened
    FROM (
        -- A single port speaks for itself; a range says which sensitive ports it covers (the first five).
        SELECT security_group_id,
               port_text(protocol, port_min, port_max) || ' from ' || source ||
               CASE WHEN port_min = port_max THEN ''
                    WHEN len(covered) <= 5 THEN ' (covers ' || array_to_string(covered, ', ') || ')'
                    ELSE ' (covers ' || array_to_string(list_slice(covered, 1, 5), ', ') || ' and '
                         || (len(covered) - 5) || ' more)'
               END AS opened
        FROM covering
        WHERE len(covered) > 0
    )
    GROUP BY security_group_id
)
SELECT g.id AS resource_id,
       g.name AS resource_name,
       g.project_id,
       CASE WHEN h.opened IS NULL THEN 'pass' ELSE 'fail' END AS status,
       'Security group ' || coalesce(g.name, '') || ' (' || g.id || ') ' ||
       CASE WHEN h.opened IS NULL THEN 'opens no database, cache, queue or cluster-control port to the internet.'
            ELSE 'opens sensitive service ports to the internet: ' || h.opened || '.' END AS reason
FROM security_groups g
LEFT JOIN hits h ON h.security_group_id = g.id
