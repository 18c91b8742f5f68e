"""The agency's own version and the RED / connector protocol versions it speaks."""
from cc_agency.agent import ccagent

AGENCY_VERSION = '9.3.0'
RED_VERSION = '9'
CONNECTOR_CLI_VERSION = ccagent.CONNECTOR_CLI_VERSION  # what the agent in each batch container speaks
