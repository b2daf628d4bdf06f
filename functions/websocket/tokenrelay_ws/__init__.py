"""TokenRelay's WebSocket functions, as a package (the function's code directory is its root in Lambda).

    connect      ``$connect``: check the API key, record the connection and its owner
    message      ``chat``, ``cancel``, ``resume`` and ``$default`` on an open connection
    disconnect   ``$disconnect``: mark the connection gone, cancel its streams (resume off)
    worker       the stream worker: one stream, posted to the client's connection
    resume       the ``resume`` message: who may resume, move or replay
    environment  what they share per execution environment: services, the event loop
    job          the worker's event, as the chat handler hands it over
    poster       AWS glue: ``@connections`` posts and the worker's async invoke

The template's handlers are the one-line modules beside the package (``connect.py``...).
"""
