"""The service layer: the eventsourcing Application and its read models."""
