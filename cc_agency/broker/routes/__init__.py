"""One blueprint per resource of the REST API."""
from cc_agency.broker.routes.misc import blueprint as misc
from cc_agency.broker.routes.red import blueprint as red
from cc_agency.broker.routes.experiments import blueprint as experiments
from cc_agency.broker.routes.experiment_operations import blueprint as experiment_operations
from cc_agency.broker.routes.batches import blueprint as batches
from cc_agency.broker.routes.nodes import blueprint as nodes

ROUTE_BLUEPRINTS = (misc, red, experiments, experiment_operations, batches, nodes)
