/// Compact text form of ``TrackedState/marks`` for storage: `series=step,series=step`, sorted.
public enum MarksCodec {
    public static func encode(_ marks: [String: Int]) -> String {
        marks.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    public static func decode(_ text: String?) -> [String: Int] {
        guard let text, !text.isEmpty else { return [:] }
        var result: [String: Int] = [:]
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "=", maxSplits: 1)
            if pieces.count == 2, let value = Int(pieces[1]) {
                result[String(pieces[0])] = value
            }
        }
        return result
    }
}
