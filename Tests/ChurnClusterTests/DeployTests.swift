import Testing
import TestSupport

/// The deployment files (Deploy/: systemd units, the compose file, Kubernetes manifests,
/// Prometheus rules, the nightly pipeline's scripts) pass every check that runs without a
/// container engine or a cluster: `Deploy/check.sh` (systemd-analyze verify, docker-compose
/// config, yamllint, kubernetes-validate, promtool, shellcheck). `make test-deps` installs the tools.
@Suite("Deployment files")
struct DeployTests {
    @Test("Deploy/check.sh passes: units verify, compose config, YAML lint, k8s schemas, alert rules")
    func deployChecksPass() async {
        let script = TestDatabase.packageRoot.appendingPathComponent("Deploy/check.sh").path
        let (status, output) = await runCommand("cd \(shellQuoted(TestDatabase.packageRoot.path)) && bash \(shellQuoted(script))")
        #expect(status == 0, "Deploy/check.sh failed:\n\(output)")
    }
}
