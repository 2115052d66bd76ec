"""Lambda entry points of the bucketzip state machine (code root: functions/).

Thin: parse the event (Powertools parser, pydantic), call the engine, return JSON.
handlers.start.handler, handlers.step.handler, handlers.finish.handler, handlers.abort.handler
"""
