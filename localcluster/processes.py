"""Process helpers of the local cluster (standard library only): every signal goes to one PID, never to a name."""

import os
import signal
import socket
import time


class ProcessError(RuntimeError):
    pass


def free_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def port_open(port, host='127.0.0.1'):
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def cmdline(pid):
    """The command line of pid as one string (arguments joined by spaces), or None if it is gone."""
    try:
        with open('/proc/{}/cmdline'.format(pid), 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except (OSError, ValueError):
        return None


def process_state(pid):
    """The state letter of pid ('R', 'S', 'T' stopped, 'Z' zombie, ...) or None if it is gone."""
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid):
    return pid is not None and process_state(pid) not in (None, 'Z', 'X')


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_pid_gone(pid, timeout, process=None):
    """Waits until pid has exited (reaping it when it is our child); True when it is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def terminate_pid(pid, timeout, process=None, name='process'):
    """SIGTERM, wait up to timeout, then SIGKILL; pid is reaped when it is our child (process)."""
    if not pid_alive(pid):
        if process is not None:
            process.poll()
        return
    if process_state(pid) == 'T':
        signal_pid(pid, signal.SIGCONT)   # a stopped process cannot act on SIGTERM
    signal_pid(pid, signal.SIGTERM)
    if not wait_pid_gone(pid, timeout, process):
        signal_pid(pid, signal.SIGKILL)
        if not wait_pid_gone(pid, 10, process):
            raise ProcessError('{} {} survived SIGKILL'.format(name, pid))
