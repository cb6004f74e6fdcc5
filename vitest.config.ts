import { defineConfig } from 'vitest/config';

// Integration tests share one sandbox fleet (network namespaces, one OpenBao), so test files run one
// at a time. Unit tests are fast either way.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
