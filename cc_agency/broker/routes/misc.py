"""Liveness, versions and the RED schema (tokens: routes/tokens.py)."""
from flask import Blueprint, jsonify
from red_val.schemas.red import red_schema

from cc_agency.broker.context import requires_auth
from cc_agency.version import AGENCY_VERSION, RED_VERSION, CONNECTOR_CLI_VERSION

blueprint = Blueprint('misc', __name__)


@blueprint.get('/')
def liveness():
    return jsonify({'status': 'ok'})


@blueprint.get('/version')
@requires_auth
def version():
    return jsonify({'agencyVersion': AGENCY_VERSION, 'redVersion': RED_VERSION,
                    'connectorCliVersion': CONNECTOR_CLI_VERSION})


@blueprint.get('/schema/red')
@requires_auth
def schema_red():
    return jsonify(red_schema)
