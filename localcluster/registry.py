"""A container registry on loopback for pull tests: Debian's ``docker-registry`` (distribution 2.8) with htpasswd auth.

Real pulls give the errors that only a registry gives: ``unauthorized`` (no or wrong credentials) and ``manifest
unknown`` (no such image), and they show that an image is pulled once per node. It listens on
``127.0.0.1:<free port>`` only; engines treat 127.0.0.0/8 registries as insecure-allowed, so no TLS is needed.
Storage lives in a temporary directory, removed by ``stop()``. The process is stopped by its PID.

    with Registry(users={'alice': 'secret'}) as registry:
        url = registry.push(engine_client, 'local/busybox:1', 'private/busybox:1')   # 127.0.0.1:P/private/busybox:1
"""
import os
import shutil
import subprocess
import tempfile
import time

import bcrypt
import requests
import yaml

from .processes import free_port, terminate_pid

BINARY = '/usr/bin/docker-registry'


class RegistryError(RuntimeError):
    pass


class Registry:
    """One ``docker-registry serve`` process with htpasswd users (``users``: name -> password)."""

    def __init__(self, users=None, work_dir=None):
        self.users = dict(users or {})
        self.work_dir = work_dir or tempfile.mkdtemp(prefix='cca-registry-')
        self.port = free_port()
        self.host = '127.0.0.1:{}'.format(self.port)
        self.process = None
        self.log_path = os.path.join(self.work_dir, 'registry.log')
        self._log = None

    def start(self, timeout=20):
        if not os.access(BINARY, os.X_OK):
            raise RegistryError('{} not found (apt-get install docker-registry)'.format(BINARY))
        storage = os.path.join(self.work_dir, 'storage')
        os.makedirs(storage, exist_ok=True)
        config = {'version': 0.1, 'log': {'level': 'warn'},
                  'storage': {'filesystem': {'rootdirectory': storage}, 'delete': {'enabled': True}},
                  'http': {'addr': self.host}}
        if self.users:
            htpasswd = os.path.join(self.work_dir, 'htpasswd')
            with open(htpasswd, 'w') as f:
                for user, password in self.users.items():
                    f.write('{}:{}\n'.format(user, bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()))
            config['auth'] = {'htpasswd': {'realm': 'cc-test', 'path': htpasswd}}
        config_path = os.path.join(self.work_dir, 'config.yml')
        with open(config_path, 'w') as f:
            yaml.safe_dump(config, f)
        self._log = open(self.log_path, 'ab')
        self.process = subprocess.Popen([BINARY, 'serve', config_path], stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get('http://{}/v2/'.format(self.host), timeout=1).status_code in (200, 401):
                    return self
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RegistryError('docker-registry did not start:\n' + self.log_tail())
            time.sleep(0.05)

    def log_tail(self, chars=3000):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()[-chars:]
        except OSError:
            return ''

    def stop(self):
        if self.process is not None:
            terminate_pid(self.process.pid, 10, self.process, 'docker-registry')
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def url(self, name):
        """The image reference of `name` (e.g. 'private/busybox:1') in this registry."""
        return '{}/{}'.format(self.host, name)

    def push(self, client, local_image, name, user=None):
        """Tag `local_image` of a docker.DockerClient's engine as `name` here and push it; returns its reference."""
        reference = self.url(name)
        repository, tag = reference.rsplit(':', 1)
        client.images.get(local_image).tag(repository, tag)
        auth = {'username': user, 'password': self.users[user]} if user else None
        for line in client.images.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
            if 'error' in line:
                raise RegistryError('push of {} failed: {}'.format(reference, line['error']))
        client.images.remove(reference)  # the engine must pull it, not find it
        return reference
