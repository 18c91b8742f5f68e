"""One blueprint per resource of the REST API, and one for the dashboard that uses it."""
from cc_agency.broker.routes.misc import blueprint as misc
from cc_agency.broker.routes.tokens import blueprint as tokens
from cc_agency.broker.routes.red import blueprint as red
from cc_agency.broker.routes.experiments import blueprint as experiments
from cc_agency.broker.routes.experiment_operations import blueprint as experiment_operations
from cc_agency.broker.routes.batches import blueprint as batches
from cc_agency.broker.routes.nodes import blueprint as nodes
from cc_agency.broker.routes.ui import blueprint as ui

ROUTE_BLUEPRINTS = (misc, tokens, red, experiments, experiment_operations, batches, nodes, ui)
