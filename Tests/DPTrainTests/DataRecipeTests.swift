import DPTrain
import Foundation
import Testing

@Suite("Data recipes")
struct DataRecipeTests {
    @Test func knownFilesNameTheCommandThatMakesThem() {
        #expect(DataRecipe.command(making: "data/mnist/train-images-idx3-ubyte") == "Launch/fetch-mnist.sh data/mnist")
        #expect(
            DataRecipe.command(making: "/srv/my data/t10k-labels-idx1-ubyte.gz")
                == "Launch/fetch-mnist.sh '/srv/my data'")
        #expect(
            DataRecipe.command(making: "data/mnist.npz")
                == "Launch/fetch-mnist.sh data/mnist && dptrain data convert --to npz --input data/mnist --output data/mnist.npz"
        )
        #expect(
            DataRecipe.command(making: "data/breast-cancer/test.csv")
                == "Launch/fetch-breast-cancer.sh data/breast-cancer")
        #expect(DataRecipe.command(making: "data/own/test.csv") == nil)
        #expect(DataRecipe.command(making: "data/x_train.npy") == nil)
    }

    /// The "file not found" error names the command, and says nothing of MNIST for a file of the user's.
    @Test func aMissingFileErrorNamesTheCommandThatMakesIt() throws {
        let empty = Support.temporaryDirectory()
        #expect {
            try DataLoader.locate("train.csv", in: "\(empty)/breast-cancer")
        } throws: { error in
            "\(error)".contains("Make it with: Launch/fetch-breast-cancer.sh \(empty)/breast-cancer")
        }
        #expect {
            try DataLoader.locate("table.csv", in: empty)
        } throws: { error in
            "\(error)"
                == "\(empty)/table.csv: file not found. It is not in \(empty). Pass --data-dir, or put the file there."
        }
    }
}
