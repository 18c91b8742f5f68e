"""The operator's `ccagency` command."""


class CliError(Exception):
    """A problem the operator can fix; printed as one line."""
