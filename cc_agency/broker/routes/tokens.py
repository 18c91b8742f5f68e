"""Tokens: GET /token (the seed's), POST /login and POST /refreshtoken (cc-agency 9.3 and its web UI), DELETE /token.

Every token is random, stored only as its hash, and revocable. A token never mints one that outlives it: a token
asked for with a token expires at the latest when that one does. A refresh token buys access tokens only
(POST /refreshtoken); it is no access token, and an access token is no refresh token.
"""
from flask import Blueprint, g, jsonify

from cc_agency import auth
from cc_agency.broker.context import authenticator, bool_arg, broker, db, presented_credentials, requires_auth, \
    unauthorized
from cc_agency.broker.errors import bad_request
from cc_agency.db import now

blueprint = Blueprint('tokens', __name__)


def _auth_conf():
    return broker().conf['broker']['auth']


def _issue(valid_for_s, kind=auth.ACCESS):
    return auth.issue_token(db(), g.user['username'], valid_for_s, kind, not_after=g.principal.not_after)


@blueprint.get('/token')
@requires_auth
def get_token():
    valid_for_s = _auth_conf()['tokens_valid_for_seconds']
    token, expires_at = _issue(valid_for_s)
    if g.principal.not_after is not None and expires_at < now() + valid_for_s:
        valid_for_s = max(0, int(expires_at - now()))  # capped by the token it was asked for with
    return jsonify({'token': token, 'validForSeconds': valid_for_s, 'username': g.user['username'],
                    'isAdmin': bool(g.user.get('isAdmin'))})


@blueprint.post('/login')
@requires_auth
def login():
    """cc-agency 9.3: HTTP Basic in, `{username, access_token, refresh_token}` out."""
    access_token, _ = _issue(auth.access_token_valid_for_s(_auth_conf()))
    refresh_token, _ = _issue(auth.refresh_token_valid_for_s(_auth_conf()), kind=auth.REFRESH)
    return jsonify({'username': g.user['username'], 'access_token': access_token, 'refresh_token': refresh_token})


@blueprint.post('/refreshtoken')
def refresh_token():
    """cc-agency 9.3: `Authorization: Bearer <refresh token>` in, `{access_token}` out (expiring no later than the
    refresh token)."""
    given = presented_credentials()
    principal = authenticator().by_token(db(), given.secret, kinds=(auth.REFRESH,)) \
        if given.scheme == 'bearer' else None
    if principal is None:
        raise unauthorized('a valid refresh token is required (Authorization: Bearer <refresh_token> of POST /login)')
    g.principal, g.user = principal, principal.user
    access_token, _ = _issue(auth.access_token_valid_for_s(_auth_conf()))
    return jsonify({'access_token': access_token})


@blueprint.delete('/token')
@requires_auth(token_kinds=(auth.ACCESS, auth.REFRESH))
def revoke_token():
    """Revoke the presented token (an access or a refresh token); `?all=true`: every token of the user."""
    if bool_arg('all'):
        revoked = auth.revoke_user_tokens(db(), g.user['username'])
        authenticator().forget_user_tokens(g.user['username'])
    elif g.principal.token is not None:
        revoked = auth.revoke_token(db(), g.principal.token['hash'])
        authenticator().forget_token(g.principal.token['hash'])
    else:
        raise bad_request('no token to revoke: send it as Bearer token (or as the Basic password), or use '
                          '?all=true to revoke all of your tokens')
    return jsonify({'revoked': revoked})
