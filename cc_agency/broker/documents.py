"""How stored documents are shown by the API: string ids, masked secrets, no internal fields."""
from cc_agency.secrets import MASK, mask_batch_secrets, replace_protected_image_auth
from cc_agency.transitions import SECRETS_VOIDED


def experiment_json(doc):
    out = dict(doc)
    out['_id'] = str(doc['_id'])
    out.pop(SECRETS_VOIDED, None)  # the controller's bookkeeping
    image = out.get('container', {}).get('settings', {}).get('image', {})
    if image.get('auth'):
        masked = replace_protected_image_auth(image['auth'], MASK)
        settings = dict(out['container']['settings'], image=dict(image, auth=masked))
        out['container'] = dict(out['container'], settings=settings)
    return out


def batch_json(doc):
    out = dict(doc)
    out['_id'] = str(doc['_id'])
    if 'inputs' in doc or 'outputs' in doc:
        out.update(mask_batch_secrets({'inputs': doc.get('inputs'), 'outputs': doc.get('outputs')}))
    return out
