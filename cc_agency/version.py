"""The agency's own version and the RED / connector protocol versions it speaks."""

AGENCY_VERSION = '9.3.0'
RED_VERSION = '9'
CONNECTOR_CLI_VERSION = '1'
