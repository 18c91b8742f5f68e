"""MongoDB access shared by broker, controller and CLI: one client per process, collections, indexes.

Collections:
  experiments   one document per POST /red (the RED without batches and without the client's login)
  batches       one document per batch: state, node, attempts, history, inputs/outputs (secrets voided at the end)
  pending_batches  the batches of a large experiment not yet in `batches`, in chunks (cc_agency.registration,
                   cc_agency.staged_batches)
  batch_output  per batch, the GridFS files of the command's stdout/stderr of its last attempt (cc_agency.batch_output)
  batch_streams.files, batch_streams.chunks   the GridFS bucket of those files
  nodes         the engines the controller knows: state, RAM, CPUs, GPUs, history
  node_images   the last use of each image on each node, while image pruning is on (cc_agency.controller.image_pruner)
  users, tokens, login_failures   authentication (broker)
  notifications the deliveries of ended batches to the notification hooks (cc_agency.notifications)
  counters      the last sequence number given to a batch and to an experiment (see `allocate_seq`); drop it only
                together with both
"""
import time

import pymongo

from cc_agency import notifications

EXPERIMENTS = 'experiments'
BATCHES = 'batches'
BATCH_OUTPUT = 'batch_output'
BATCH_STREAMS = 'batch_streams'  # a GridFS bucket: its collections are BATCH_STREAMS + '.files' and '.chunks'
NODES = 'nodes'
USERS = 'users'
TOKENS = 'tokens'
LOGIN_FAILURES = 'login_failures'
COUNTERS = 'counters'
PENDING_BATCHES = 'pending_batches'
NOTIFICATIONS = 'notifications'
NODE_IMAGES = 'node_images'
ALL_COLLECTIONS = (EXPERIMENTS, BATCHES, PENDING_BATCHES, BATCH_OUTPUT, BATCH_STREAMS + '.files',
                   BATCH_STREAMS + '.chunks', NODES, USERS, TOKENS, LOGIN_FAILURES, COUNTERS, NOTIFICATIONS,
                   NODE_IMAGES)

NODE_SCHEDULABLE = 'schedulable'  # field of a node: False while it is cordoned (cc_agency.cordon)

HISTORY_LIMIT = 100  # entries kept per batch and node; older ones are dropped
# Every experiment and every batch gets a sequence number `seq` when it is registered (the batches of one
# experiment a consecutive block): registration order as one integer. The queue and the lists are in this order;
# lists are read by ranges of it (cc_agency.seq_order), so that a page costs about what it returns.
SEQ = 'seq'
LIST_ORDER = [(SEQ, -1)]  # newest first
BY_STATE = [('state', 1), (SEQ, 1)]  # the batches in a state: also those of one node, hinted (no node index)


CONNECT_TIMEOUT_MS = 20000


def mongo_client(conf, server_selection_timeout_ms=3000):
    """A pymongo client for `conf['mongo']`; it connects lazily, so creating it never blocks."""
    mongo = conf['mongo']
    options = dict(
        host=mongo.get('host', 'localhost'),
        port=mongo.get('port', 27017),
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        # also the timeout of pymongo's heartbeat to the server: one that times out clears the connection pool and
        # cancels the operations in flight (_OperationCancelled), so a server busy with a long query must not look
        # dead after 3 s; a server that is down still fails fast (refused, then server selection's timeout)
        connectTimeoutMS=CONNECT_TIMEOUT_MS,
        directConnection=True,
        tz_aware=False,
    )
    if mongo.get('username'):
        options.update(username=mongo['username'], password=mongo['password'],
                       authSource=mongo.get('auth_source', mongo['db']))
    return pymongo.MongoClient(**options)


def database(conf, **kwargs):
    return mongo_client(conf, **kwargs)[conf['mongo']['db']]


# indexes that earlier versions created and no query uses any more: each costs every batch insert a key write
# (on SecantusDB about as much as the document itself), so they are dropped
OBSOLETE_INDEXES = {BATCHES: ('state_1_username_1_seq_1', 'experimentId_1_state_1', 'node_1_state_1')}


def ensure_indexes(db):
    """Indexes every query of the broker and the controller relies on, and no others; idempotent."""
    for collection, names in OBSOLETE_INDEXES.items():
        existing = db[collection].index_information()
        for name in names:
            if name in existing:
                db[collection].drop_index(name)
    batches = db[BATCHES]
    batches.create_index(BY_STATE)  # the active batches, and lists by state
    batches.create_index([('experimentId', 1), ('state', 1), (SEQ, 1)])  # an experiment's queue, in seq windows
    for collection in (batches, db[EXPERIMENTS]):
        collection.create_index(LIST_ORDER)
        collection.create_index([('username', 1)] + LIST_ORDER)
    db[EXPERIMENTS].create_index([('registrationComplete', 1)])  # registrations under way
    db[EXPERIMENTS].create_index([('stateCounts.registered', 1)])  # those with queued batches (cc_agency.batch_counts)
    pending = db[PENDING_BATCHES]
    pending.create_index([('stagedAt', 1)])  # orphaned chunks
    pending.create_index([('experimentId', 1)])  # an experiment's chunks (cancel, recount)
    pending.create_index([('idTimes', 1)])  # the chunks that may hold a batch id (cc_agency.staged_batches)
    pending.create_index([('firstSeq', 1)])  # the chunks of a range of sequence numbers, from below...
    pending.create_index([('lastSeq', 1)])  # ... and from above
    db[NODES].create_index([(NODE_SCHEDULABLE, 1)])  # the cordoned nodes (cc_agency.cordon)
    db[NODE_IMAGES].create_index([('node', 1), ('image', 1)], unique=True)  # one last use per node and image
    db[NODE_IMAGES].create_index([('node', 1), ('lastUsed', 1)])  # the pruner's candidates
    db[USERS].create_index([('username', 1)], unique=True)
    db[TOKENS].create_index([('tokenHash', 1)], unique=True)
    db[TOKENS].create_index([('expiresAt', 1)])
    db[TOKENS].create_index([('username', 1)])  # DELETE /token?all=true, a new password
    db[LOGIN_FAILURES].create_index([('username', 1), ('time', 1)])
    db[LOGIN_FAILURES].create_index([('address', 1), ('time', 1)])  # cc_agency.login_guard
    # the ended batches not yet turned into deliveries: only they carry the marker, so the index stays small
    batches.create_index([(notifications.NOTIFY_MARKER, 1)], sparse=True)
    db[NOTIFICATIONS].create_index([('state', 1), ('hook', 1), ('nextAttemptAt', 1)])  # due deliveries, the gauge
    db[NOTIFICATIONS].create_index([('doneAt', 1)], expireAfterSeconds=notifications.DONE_KEPT_S)


def allocate_seq(db, collection_name, count=1):
    """Reserve `count` consecutive sequence numbers for documents of a collection; returns the first of them.

    One atomic increment, whatever the count. A registration that fails afterwards leaves a gap, which no
    reader minds: ranges of sequence numbers are only ever filtered, never counted as documents.
    """
    counter = db[COUNTERS].find_one_and_update({'_id': collection_name}, {'$inc': {'last': count}}, upsert=True,
                                               return_document=pymongo.ReturnDocument.AFTER)
    return counter['last'] - count + 1


def last_seq(db, collection_name):
    """The highest sequence number given out for a collection (0 when none was)."""
    counter = db[COUNTERS].find_one({'_id': collection_name})
    return counter['last'] if counter else 0


def history_push(entry):
    """The `$push` operand that appends one history entry and keeps the history bounded."""
    return {'$each': [entry], '$slice': -HISTORY_LIMIT}


def now():
    return time.time()
