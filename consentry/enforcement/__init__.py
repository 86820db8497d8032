"""Strikes, suspensions and what a ruling costs an account."""
