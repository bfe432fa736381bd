// Keep test output readable: logs at warn and above unless LOG_LEVEL says otherwise.
process.env.LOG_LEVEL ??= 'warn';
