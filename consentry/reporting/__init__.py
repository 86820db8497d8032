"""Figures and reports about what was done: SLA figures now; transparency reports,
incident packs and statements of reasons as they are added."""
