"""recserve: real-time item recommendations (item2vec + ScaNN + LR) over gRPC."""
