import ArgumentParser
import FipsArtifact
import FipsCommandLine
import FipsExport

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an artifact's header, configuration, plan limits and tensor table.",
        discussion: """
        The plain output is a summary and one line per tensor table entry (name, shape, element type, \
        stored bytes, and which entries share stored bytes, as every block of a FiPS group shares its \
        basis). --json prints the same as one JSON object; its keys are listed in docs/ARTIFACT.md.

        EXAMPLES:
          fips info dinov2_s.fips
          fips info --json fips33.fips
        """)

    @OptionGroup var modelArgument: ModelArgument
    var model: String { modelArgument.path }

    @Flag(help: "Print one JSON object (keys: docs/ARTIFACT.md, \"fips info --json\").")
    var json = false

    func run() throws {
        let a: Artifact
        do { a = try Artifact(path: model) } catch { throw CommandFailure(description: error.message) }
        let info = ArtifactInfo(a)
        if json {
            print(try info.jsonText())
        } else {
            info.textLines().forEach { print($0) }
        }
    }
}
