"""Signed approval links, a confirmation page, single use, a recorded approver."""
