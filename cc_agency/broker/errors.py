"""Every error of the API is a JSON object `{"message": ...}` with the right status: never HTML, never a traceback."""
import logging

import pymongo.errors
from flask import jsonify
from werkzeug.exceptions import HTTPException

from cc_agency import loggable

log = logging.getLogger(__name__)
DATABASE_LOGIN_CODES = (13, 18)  # Unauthorized, AuthenticationFailed: the operator's database login is wrong


class ApiError(Exception):
    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message):
    return ApiError(400, message)


def not_found(what):
    return ApiError(404, '{} not found'.format(what))


def _json_error(status, message, headers=None):
    response = jsonify({'message': message})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app):
    @app.errorhandler(ApiError)
    def api_error(error):
        return _json_error(error.status, error.message, error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error):
        return _json_error(error.code, error.description or error.name, _allow_header(error))

    @app.errorhandler(pymongo.errors.ConnectionFailure)
    def database_unreachable(error):
        log.warning('database unreachable: %s', type(error).__name__)
        return _json_error(503, 'the database is unreachable, try again later', {'Retry-After': '5'})

    @app.errorhandler(pymongo.errors.OperationFailure)
    def database_refused(error):
        if error.code in DATABASE_LOGIN_CODES:
            log.error('the database refuses the broker\'s login (mongo.username/password): %s', error)
            return _json_error(503, 'the broker cannot use its database, try again later', {'Retry-After': '30'})
        # never the error's text: a failed write carries the documents it wrote, secrets included
        log.error('database operation failed: %s (code %s)', type(error).__name__, error.code)
        return _json_error(500, 'internal error')

    @app.errorhandler(Exception)
    def internal_error(error):
        log.error('unexpected error\n%s', loggable.traceback_text(error))  # no write's payload (loggable)
        return _json_error(500, 'internal error')


def _allow_header(error):
    allow = dict(error.get_headers()).get('Allow')
    return {'Allow': allow} if allow else None
