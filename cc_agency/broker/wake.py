"""Wake the controller over ZeroMQ after the broker changed work for it: a PUSH to `controller.external_url` (TCP,
the seed's key) or to the unix socket `controller.bind_socket_path` (`ipc://`, cc-agency 9.x's key); the address
is cc_agency.config.wake_connect_url, the controller binds cc_agency.config.wake_bind_url.

The message carries no data: it only makes the scheduler run a pass now instead of at its next timer tick, so a
lost message delays work by one timer interval at most. Sending never blocks a request.
"""
import threading

import zmq


class ControllerWaker:
    def __init__(self, url):
        self._url = url
        self._socket = None
        self._lock = threading.Lock()  # zmq sockets are not thread-safe; the dev server is threaded

    def wake(self):
        with self._lock:
            if self._socket is None:
                socket = zmq.Context.instance().socket(zmq.PUSH)
                socket.setsockopt(zmq.LINGER, 0)
                socket.setsockopt(zmq.SNDHWM, 10)
                socket.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing while the controller is not connected
                socket.connect(self._url)
                self._socket = socket
            try:
                self._socket.send(b'wake', zmq.NOBLOCK)
            except zmq.Again:
                pass  # controller away or already has wake-ups queued: its timer picks the work up
