"""Reports: the context built from the store, HTML and PDF from reports/, and the exports."""
