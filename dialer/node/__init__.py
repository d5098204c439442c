"""Several dialer hosts serving the same campaigns over one PostgreSQL (issue 18): see README.md here."""
