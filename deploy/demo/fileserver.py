#!/usr/bin/env python3
"""The demo's file server: what `red-connector-http` downloads inputs from and uploads outputs to.

    python3 deploy/demo/fileserver.py --root DIR [--host 127.0.0.1] [--port 8081]

GET/HEAD serve files below DIR; PUT and POST write the request body to that path below DIR (directories are made as
needed). Paths that leave DIR are refused. Standard library only; one thread per request; logs to stderr.
It is meant for loopback only: it has no authentication.
"""
import argparse
import http.server
import os
import posixpath
import sys
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'cc-agency-demo-files/1'

    def _local_path(self):
        path = posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))
        root = os.path.realpath(self.server.root)
        local = os.path.realpath(os.path.join(root, path.lstrip('/')))
        if local != root and not local.startswith(root + os.sep):
            return None
        return local

    def _reply(self, status, body=b'', content_type='text/plain; charset=utf-8', head=False):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _get(self, head):
        local = self._local_path()
        if local is None or not os.path.isfile(local):
            return self._reply(404, b'not found\n', head=head)
        with open(local, 'rb') as f:
            data = f.read()
        self._reply(200, data, 'application/octet-stream', head)

    def do_GET(self):
        self._get(head=False)

    def do_HEAD(self):
        self._get(head=True)

    def _read_body(self):
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b';', 1)[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    return b''.join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def _upload(self):
        body = self._read_body()
        local = self._local_path()
        if local is None or local == os.path.realpath(self.server.root):
            return self._reply(403, b'forbidden path\n')
        os.makedirs(os.path.dirname(local), exist_ok=True)
        partial = local + '.part'
        with open(partial, 'wb') as f:
            f.write(body)
        os.replace(partial, local)
        self._reply(201, b'')

    do_PUT = _upload
    do_POST = _upload


def main(argv=None):
    parser = argparse.ArgumentParser(description='Loopback file server of the CC-Agency demo (GET, PUT, POST).')
    parser.add_argument('--root', required=True, help='directory to serve and to store uploads in')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8081)
    args = parser.parse_args(argv)
    os.makedirs(args.root, exist_ok=True)
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.root = args.root
    print('serving {} on http://{}:{}/'.format(args.root, args.host, args.port), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
