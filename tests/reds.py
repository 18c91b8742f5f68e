"""RED documents used across the tests: the end-to-end test RED and variations of it."""
import copy

TEST_IMAGE = 'local/cc-test:1'


def cli(base_command=('python3', '-c')):
    return {
        'cwlVersion': 'v1.0',
        'class': 'CommandLineTool',
        'baseCommand': list(base_command),
        'inputs': {
            'script': {'type': 'string', 'inputBinding': {'position': 0}},
            'infile': {'type': 'File', 'inputBinding': {'position': 1}},
            'word': {'type': 'string', 'inputBinding': {'position': 2, 'prefix': '--word'}},
            'times': {'type': 'int', 'inputBinding': {'position': 3, 'prefix': '--times=', 'separate': False}},
        },
        'outputs': {'result': {'type': 'File', 'outputBinding': {'glob': 'result.txt'}}},
    }


# reads the input file, writes "<content><word * times>" to result.txt, prints to stdout and stderr
SCRIPT = (
    "import sys; a = sys.argv[1:]; data = open(a[0]).read(); word = a[2]; times = int(a[3].split('=')[1]); "
    "open('result.txt', 'w').write(data + word * times); print('processed', len(data), 'bytes'); "
    "print('note on stderr', file=sys.stderr)"
)


def batch(file_server_url, name='in.txt', out='out.txt', word='ab', times=3, script=SCRIPT, access_extra=None):
    access_in = {'url': file_server_url + '/files/' + name, 'method': 'GET'}
    access_out = {'url': file_server_url + '/uploads/' + out, 'method': 'PUT'}
    if access_extra:
        access_in.update(access_extra)
        access_out.update(access_extra)
    return {
        'inputs': {
            'script': script,
            'infile': {'class': 'File', 'connector': {'command': 'red-connector-http', 'access': access_in}},
            'word': word,
            'times': times,
        },
        'outputs': {
            'result': {'class': 'File', 'connector': {'command': 'red-connector-http', 'access': access_out}},
        },
    }


def red(batches, ram=256, image=TEST_IMAGE, execution_settings=None):
    doc = {
        'redVersion': '9',
        'cli': cli(),
        'container': {'engine': 'docker', 'settings': {'image': {'url': image}, 'ram': ram}},
        'batches': copy.deepcopy(batches),
    }
    if execution_settings is not None:
        doc['execution'] = {'engine': 'ccagency', 'settings': execution_settings}
    return doc


def red_of(count):
    """A RED of `count` batches, each with an input file of its own on a closed port: for tests of registration
    and listing, where no batch runs."""
    return red([batch('http://127.0.0.1:9', name='in{}.txt'.format(i)) for i in range(count)])
