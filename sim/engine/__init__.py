"""One replica of a model server: requests, the KV block pool, the schedulers, the step loop,
and the step-time models with the GPU and model facts they need. Imports nothing else from sim."""
