"""Merchants, their programs, owners and cashier devices."""
