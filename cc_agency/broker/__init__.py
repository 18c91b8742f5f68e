"""The broker: the REST API researchers use (a Flask app served by uwsgi)."""
