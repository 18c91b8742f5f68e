"""Wake the controller over ZeroMQ after the broker changed work for it: a PUSH to `controller.external_url` (TCP,
the seed's key) or to the unix socket `controller.bind_socket_path` (`ipc://`, cc-agency 9.x's key); the address
is cc_agency.config.wake_connect_url, the controller binds cc_agency.config.wake_bind_url.

The message carries no data: it only makes the scheduler run a pass now instead of at its next timer tick, so a
lost message delays work by one timer interval at most. Sending never blocks a request.
"""
import threading
import time

import zmq

# A new PUSH socket's connection is made in the background, and with ZMQ_IMMEDIATE nothing is queued before it is
# made, so a process's first wake-up, sent right after connecting, was always dropped (the batch then waited for the
# controller's timer). Within this long after connecting, a send that finds no connection waits for it, at most
# FIRST_CONNECT_WAIT_S (on loopback it takes well under a millisecond when the controller is up).
CONNECTING_S = 1.0
FIRST_CONNECT_WAIT_S = 0.2


class ControllerWaker:
    def __init__(self, url):
        self._url = url
        self._socket = None
        self._connected_at = None
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
                self._connected_at = time.monotonic()
            try:
                self._socket.send(b'wake', zmq.NOBLOCK)
            except zmq.Again:
                if time.monotonic() - self._connected_at > CONNECTING_S:
                    return  # controller away or already has wake-ups queued: its timer picks the work up
                if self._socket.poll(FIRST_CONNECT_WAIT_S * 1000, zmq.POLLOUT):
                    try:
                        self._socket.send(b'wake', zmq.NOBLOCK)
                    except zmq.Again:
                        pass
