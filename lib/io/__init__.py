"""Input/output helpers: streaming Stage-1 reader and atomic writers."""
