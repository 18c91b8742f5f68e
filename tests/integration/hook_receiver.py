"""A notification hook for tests: an HTTP server on 127.0.0.1 that records every POST and answers as told.

`statuses` is the list of answers to give, one per request, then `default_status` for every later one; a request
without the expected Basic authorization is answered 401 (and recorded). Runs in a daemon thread of the test.
"""
import base64
import http.server
import json
import threading
from collections import namedtuple

Received = namedtuple('Received', 'delivery signature user body status')


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        header = self.headers.get('Authorization', '')
        user = base64.b64decode(header[6:]).decode() if header.startswith('Basic ') else None
        with receiver.lock:
            if user != receiver.expected_user:
                status = 401
            elif receiver.statuses:
                status = receiver.statuses.pop(0)
            else:
                status = receiver.default_status
            receiver.received.append(Received(self.headers.get('X-CC-Agency-Delivery'),
                                              self.headers.get('X-CC-Agency-Signature'), user, body, status))
        self.send_response(status)
        self.send_header('Content-Length', '0')
        self.end_headers()


class HookReceiver:
    def __init__(self, username, password, statuses=(), default_status=200):
        self.expected_user = '{}:{}'.format(username, password)
        self.statuses = list(statuses)
        self.default_status = default_status
        self.received = []
        self.lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self._server.receiver = self
        self.url = 'http://127.0.0.1:{}/hook'.format(self._server.server_address[1])

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self):
        with self.lock:
            return list(self.received)

    def delivered_batches(self):
        """{batch id: [its entries in requests answered 200]}."""
        found = {}
        for request in self.snapshot():
            if request.status == 200:
                for batch in json.loads(request.body)['batches']:
                    found.setdefault(batch['batchId'], []).append(batch)
        return found
