package s3test

// ForceSidecar exposes forceSidecar to this package's external tests.
var ForceSidecar = &forceSidecar

// ParseServerURL exposes parseServerURL.
var ParseServerURL = parseServerURL
