"""An HTTP file server on 127.0.0.1 for connector tests (``red-connector-http`` in ``network_mode="host"``).

GET serves files added with ``add()`` (bytes kept in memory) or found below an optional directory; PUT and POST
store the request body under the request path, readable with ``uploaded(path)``. With ``auth=(user, password)``
every request must carry that HTTP Basic authorization (else 401). Every request is recorded in ``requests``
(method, path, status, user, body size), so tests can assert what a container did. Threads serve requests
concurrently; the server runs in a daemon thread of the calling process.
"""

import base64
import http.server
import os
import posixpath
import threading
import urllib.parse
from collections import namedtuple

Request = namedtuple('Request', 'method path status user size headers')


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'cc-test-fileserver/1'

    def log_message(self, fmt, *args):   # keep pytest output clean; requests are recorded instead
        pass

    @property
    def files(self):
        return self.server.owner

    def _path(self):
        return urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)

    def _user(self):
        header = self.headers.get('Authorization', '')
        if not header.startswith('Basic '):
            return None
        try:
            return base64.b64decode(header[6:]).decode()
        except ValueError:
            return None

    def _authorized(self):
        expected = self.files.auth
        if expected is None:
            return True
        return self._user() == '{}:{}'.format(*expected)

    def _record(self, status, size):
        credentials = self._user()
        user = credentials.split(':', 1)[0] if credentials else None
        self.files._record(Request(self.command, self._path(), status, user, size, dict(self.headers)))

    def _reply(self, status, body=b'', content_type='application/octet-stream', head=False):
        self.send_response(status)
        if status == 401:
            self.send_header('WWW-Authenticate', 'Basic realm="cc-test"')
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _read_body(self):
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b';', 1)[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):   # trailers
                        pass
                    return b''.join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def _get(self, head):
        if not self._authorized():
            self._record(401, 0)
            return self._reply(401, b'unauthorized\n', 'text/plain', head)
        data = self.files.get(self._path())
        if data is None:
            self._record(404, 0)
            return self._reply(404, b'not found\n', 'text/plain', head)
        self._record(200, len(data))
        self._reply(200, data, head=head)

    def do_GET(self):
        self._get(head=False)

    def do_HEAD(self):
        self._get(head=True)

    def _upload(self):
        body = self._read_body()   # read even when refused, so the connection stays usable
        if not self._authorized():
            self._record(401, len(body))
            return self._reply(401, b'unauthorized\n', 'text/plain')
        self.files._store(self._path(), body)
        self._record(201, len(body))
        self._reply(201, b'')

    do_PUT = _upload
    do_POST = _upload


class FileServer:
    """Threading HTTP server on 127.0.0.1:<free port> (``port=0``). ``start()``/``stop()`` or a with block.

    :param files: initial {path: bytes} to serve
    :param directory: also serve files below this host directory (in-memory files win)
    :param auth: (username, password) required as HTTP Basic auth on every request, or None
    """

    def __init__(self, files=None, directory=None, auth=None, host='127.0.0.1', port=0):
        self.host = host
        self.port = port
        self.directory = directory
        self.auth = auth
        self.requests = []
        self._files = {}
        self._uploads = {}
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        for path, data in (files or {}).items():
            self.add(path, data)

    def __repr__(self):
        return '<FileServer {}>'.format(self.base_url)

    @staticmethod
    def _normalise(path):
        return posixpath.normpath('/' + path.lstrip('/'))

    # --------------------------------------------------------------------------------------- content

    def add(self, path, data):
        """Serves data (bytes or str) at path; returns the file's URL."""
        if isinstance(data, str):
            data = data.encode()
        with self._lock:
            self._files[self._normalise(path)] = bytes(data)
        return self.url(path)

    def get(self, path):
        """What a GET of path returns: an added file, else an uploaded one, else a file below directory."""
        path = self._normalise(path)
        with self._lock:
            if path in self._files:
                return self._files[path]
            if path in self._uploads:
                return self._uploads[path]
        if self.directory:
            local = os.path.join(self.directory, path.lstrip('/'))
            if os.path.realpath(local).startswith(os.path.realpath(self.directory) + os.sep) and \
                    os.path.isfile(local):
                with open(local, 'rb') as f:
                    return f.read()
        return None

    def _store(self, path, data):
        with self._lock:
            self._uploads[self._normalise(path)] = data

    def uploaded(self, path):
        """The bytes last PUT/POSTed to path, or None."""
        with self._lock:
            return self._uploads.get(self._normalise(path))

    def _record(self, request):
        with self._lock:
            self.requests.append(request)

    def requests_for(self, path, method=None):
        path = self._normalise(path)
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def reset(self):
        """Forgets uploads and recorded requests (added files stay)."""
        with self._lock:
            self._uploads.clear()
            self.requests.clear()

    # --------------------------------------------------------------------------------------- addresses

    @property
    def base_url(self):
        return 'http://{}:{}'.format(self.host, self.port)

    def url(self, path):
        return self.base_url + urllib.parse.quote(self._normalise(path))

    def access(self, path, method=None, auth=True):
        """A red-connector-http access object for path (with this server's credentials when auth)."""
        access = {'url': self.url(path)}
        if method:
            access['method'] = method
        if auth and self.auth:
            access['auth'] = {'username': self.auth[0], 'password': self.auth[1]}
        return access

    # --------------------------------------------------------------------------------------- life cycle

    def start(self):
        if self._server is not None:
            return self
        server = http.server.ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        server.owner = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.1},
                                        name='cc-test-fileserver', daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
