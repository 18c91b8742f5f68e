"""Reading answers from the operator: secrets never from the command line, only from a prompt or stdin."""
import getpass
import sys


def ask(prompt):
    return input(prompt)


def ask_secret(prompt):
    return getpass.getpass(prompt)


def secret_from_stdin():
    line = sys.stdin.readline()
    return line[:-1] if line.endswith('\n') else line


def confirm(prompt, default=False):
    answer = input(prompt).strip().lower()
    if not answer:
        return default
    return answer in ('y', 'yes')
