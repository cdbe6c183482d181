"""Engine use cases, grouped by area; `engine.facade.Engine` combines them."""
