"""The server layer: config to running workers: load, bind, lifespan, supervise, reload, drain."""
