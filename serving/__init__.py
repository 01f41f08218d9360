"""A model server speaking TF Serving's gRPC and REST protocols, with its flags.

Three layers, as in TF Serving's tree, each importing only those below it
(tests/test_import_graph.py holds them to it):

    model_servers/  the server: options and flags, gRPC, REST and its JSON,
                    monitoring, the process (`python -m serving`, main.py)
    servables/      one loaded SavedModel version: signatures, Predict,
                    Classify, Regress, MultiInference, warm-up, batching
    core/           version management: the storage path source, version
                    policies, the registry, request logging, status codes

serving/ imports nothing of the project but models/ (the serving contract).
"""
