"""Liveness, versions, tokens and the RED schema."""
from flask import Blueprint, g, jsonify
from red_val.schemas.red import red_schema

from cc_agency import auth
from cc_agency.broker.context import broker, db, requires_auth
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


@blueprint.get('/token')
@requires_auth
def token():
    valid_for_s = broker().conf['broker']['auth']['tokens_valid_for_seconds']
    return jsonify({'token': auth.issue_token(db(), g.user['username'], valid_for_s), 'validForSeconds': valid_for_s,
                    'username': g.user['username'], 'isAdmin': bool(g.user.get('isAdmin'))})


@blueprint.get('/schema/red')
@requires_auth
def schema_red():
    return jsonify(red_schema)
