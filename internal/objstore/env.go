package objstore

// ConfigFromEnv reads the object-store settings of oss:// and s3:// locations from an
// environment (the caller passes os.Getenv: only main packages read the environment):
//
//	oss://  EAS_OSS_ENDPOINT, OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_SESSION_TOKEN
//	        (or ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET, ALIBABA_CLOUD_SECURITY_TOKEN)
//	s3://   AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
//	        AWS_SESSION_TOKEN, AWS_REGION (else AWS_DEFAULT_REGION)
//
// Addressing is left empty (auto); flags set it and may override the endpoints.
func ConfigFromEnv(getenv func(string) string) (oss, s3 Config) {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	oss = Config{
		Endpoint:        getenv("EAS_OSS_ENDPOINT"),
		AccessKeyID:     first("OSS_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID"),
		SecretAccessKey: first("OSS_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
		SessionToken:    first("OSS_SESSION_TOKEN", "ALIBABA_CLOUD_SECURITY_TOKEN"),
	}
	s3 = Config{
		Endpoint:        first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
		AccessKeyID:     getenv("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken:    getenv("AWS_SESSION_TOKEN"),
		Region:          first("AWS_REGION", "AWS_DEFAULT_REGION"),
	}
	return oss, s3
}
