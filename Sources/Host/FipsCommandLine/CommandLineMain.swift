import ArgumentParser
import Foundation
import enum FipsDeviceSupport.ExitStatus

/// How fips and fips-plan end, by the kit's exit-status table (ExitStatus,
/// the README's "Exit status") instead of ArgumentParser's 64 for a bad
/// command line and 1 for everything else: usage is printed for a
/// command-line error only, never for a failure while running.
public enum CommandLineMain {
    public static func run<Root: ParsableCommand>(_ root: Root.Type, program: String) -> Never {
        var command: ParsableCommand
        do {
            command = try root.parseAsRoot()
        } catch {
            // --help and --version arrive here as errors with status 0.
            if root.exitCode(for: error) == .success { root.exit(withError: error) }
            printError(root.fullMessage(for: error))
            exit(ExitStatus.usage)
        }
        do {
            try command.run()
            exit(ExitStatus.ok)
        } catch let e as ExitCode {
            exit(e.rawValue)
        } catch let e as CleanExit {
            root.exit(withError: e)
        } catch let e as ValidationError {
            // Options that do not go together, found once the model was read: still the command line's.
            printError("\(program): error: \(e.message)")
            exit(ExitStatus.usage)
        } catch {
            // `fips help eval` and `fips eval --help` parse to ArgumentParser's HelpCommand, whose
            // run() throws the help request: printed on stdout, exit 0, like --help on the root.
            if root.exitCode(for: error) == .success { root.exit(withError: error) }
            printError("\(program): error: \(root.message(for: error))")
            exit(ExitStatus.modelOrIO)
        }
    }

    static func printError(_ s: String) {
        FileHandle.standardError.write(Data((s.hasSuffix("\n") ? s : s + "\n").utf8))
    }
}
