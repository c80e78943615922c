// Hardhat 2 is used for two things only: the local chain node and an offline Solidity compiler.
// The Python side (ledger/chain/compiler.py) compiles with the same settings through scripts/solc-shim.js;
// keep SOLC_SETTINGS in sync with SOLC_SETTINGS there, tests/test_compiler.py checks the bytecode matches.
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = "0.8.28";

// No machine here can download a solc binary: use the npm package's soljson.js (solc-js) instead.
subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async ({ solcVersion }, _hre, runSuper) => {
  if (solcVersion !== SOLC_VERSION) {
    return runSuper();
  }
  // Loaded lazily: soljson.js is large and `hardhat node` never needs it.
  const solc = require("solc");
  const longVersion = solc.version();
  if (!longVersion.startsWith(`${SOLC_VERSION}+commit.`)) {
    throw new Error(`npm package solc is ${longVersion}, expected ${SOLC_VERSION}; run npm ci`);
  }
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion,
  };
});

/** @type {import("hardhat/config").HardhatUserConfig} */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: {
      // Many runs: the contract is deployed once and called millions of times, so runtime gas wins over size.
      optimizer: { enabled: true, runs: 1000000 },
      evmVersion: "cancun",
      // The IR pipeline saves about 700 gas per payment here (see README, Benchmarks).
      viaIR: true,
    },
  },
  defaultNetwork: "hardhat",
  networks: {
    hardhat: {
      chainId: 31337,
      allowUnlimitedContractSize: false,
      // Free gas, as on most consortium chains (Besu/QBFT with min-gas-price 0): participants' fresh keys can
      // send without being funded first. The Python client also handles chains that charge.
      initialBaseFeePerGas: 0,
      // `fundflow up`'s behaviour-score demo starts its own chain in the past and simulates up to today
      // (fundflow/demo_scoring.py); unset, the chain starts now.
      ...(process.env.FUNDFLOW_CHAIN_START_DATE ? { initialDate: process.env.FUNDFLOW_CHAIN_START_DATE } : {}),
    },
  },
  paths: {
    sources: "./contracts",
    artifacts: "./artifacts",
    cache: "./cache",
  },
};
