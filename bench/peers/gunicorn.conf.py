# bench/peers/gunicorn.conf.py: the collector back on in each worker after
# the fork (app.py disabled it and froze the preloaded state in the master).
import gc

preload_app = True


def post_fork(server, worker):
    gc.enable()
