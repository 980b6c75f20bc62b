async def scheduled_run(ctx): return {}
