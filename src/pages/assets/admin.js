// The operator console.
