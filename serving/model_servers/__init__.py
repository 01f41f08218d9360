"""The model server (TF Serving's model_servers/): its options and flags, the
gRPC and REST front ends, monitoring, and the process that runs them."""
