"""Events: asynchronous calls, timers and watches."""
