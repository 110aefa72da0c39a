"""Where scoring touches the outside world: the SQLite evaluation log, measurement files and
the ``si`` / ``grade`` commands. The rest of ``scoring`` is pure maths over records (no files,
no sockets, no threads, no clock of its own), so it can be tested and reused anywhere."""
