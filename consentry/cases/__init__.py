"""Reports, takedown requests, the review queue and SLA clocks."""
