"""How stored documents are shown by the API: string ids, masked secrets, no internal fields, and the field names
of cc-agency 9.3 that its web UI reads (in addition to this API's own)."""
from cc_agency.batch_counts import COUNTS, STAGED
from cc_agency.notifications import NOTIFY_MARKER
from cc_agency.registration import ENDED_CHUNKS
from cc_agency.secrets import MASK, mask_batch_secrets, replace_protected_image_auth
from cc_agency.transitions import SECRETS_VOIDED


def experiment_json(doc, batch_counts=None):
    """`batch_counts`: {state: n} of its batches (cc_agency.batch_counts), shown as `batchCounts`."""
    out = dict(doc)
    out['_id'] = str(doc['_id'])
    out.pop(SECRETS_VOIDED, None)  # the controller's bookkeeping
    out.pop(COUNTS, None)  # internal: shown as batchCounts
    out.pop(STAGED, None)
    out.pop(ENDED_CHUNKS, None)  # the registrar's
    if batch_counts is not None:
        out['batchCounts'] = batch_counts
    image = out.get('container', {}).get('settings', {}).get('image', {})
    if image.get('auth'):
        masked = replace_protected_image_auth(image['auth'], MASK)
        settings = dict(out['container']['settings'], image=dict(image, auth=masked))
        out['container'] = dict(out['container'], settings=settings)
    return out


def batch_json(doc, experiment_batch_seq=None):
    """`experiment_batch_seq`: the first sequence number of the batch's experiment, for cc-agency 9.3's
    `batchesListIndex` (the batch's index in the RED's `batches`: registration numbers them in that order)."""
    out = dict(doc)
    out['_id'] = str(doc['_id'])
    out.pop(NOTIFY_MARKER, None)  # the controller's bookkeeping (its notifications still to be written)
    if experiment_batch_seq is not None and isinstance(doc.get('seq'), int):
        out['batchesListIndex'] = doc['seq'] - experiment_batch_seq
    if 'inputs' in doc or 'outputs' in doc:
        out.update(mask_batch_secrets({'inputs': doc.get('inputs'), 'outputs': doc.get('outputs')}))
    return out
