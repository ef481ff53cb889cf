// Runs the example: SHARECACHE_URL, SHARECACHE_TOKEN, PORT.
import { NestFactory } from "@nestjs/core";
import { AppModule } from "./app.module.js";

const users = new Map([["1", { id: "1", email: "ada@example.com", password: "pw", name: "Ada" }]]);
const app = await NestFactory.create(
  AppModule.register({ url: process.env.SHARECACHE_URL ?? "http://127.0.0.1:7070", token: process.env.SHARECACHE_TOKEN ?? "", users }),
);
await app.listen(Number(process.env.PORT ?? 3000));
